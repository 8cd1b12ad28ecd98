"""idclab: the local IDC lab as a package (entry point: lab/lab; layout: docs/lab.md).

plan is pure and unit-tested; runner is the only module that runs commands.
"""
