module idcloud.invalid/lab/registry-images/pause

go 1.24
