module idcloud.invalid/lab/registry-images/nnp

go 1.24
