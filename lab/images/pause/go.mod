module idcloud.invalid/lab/images/pause

go 1.24
