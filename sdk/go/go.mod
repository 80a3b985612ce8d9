module github.com/sophra/sdk-go

go 1.22
