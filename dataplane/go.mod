module github.com/gatehouse-dev/gatehouse/dataplane

go 1.26

replace github.com/gatehouse-dev/gatehouse/proto => ../proto
