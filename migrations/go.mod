module github.com/gatehouse-dev/gatehouse/migrations

go 1.26
