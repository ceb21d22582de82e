module github.com/gatehouse-dev/gatehouse/web

go 1.26
