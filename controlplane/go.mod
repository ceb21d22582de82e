module github.com/gatehouse-dev/gatehouse/controlplane

go 1.26

replace (
	github.com/gatehouse-dev/gatehouse/migrations => ../migrations
	github.com/gatehouse-dev/gatehouse/proto => ../proto
	github.com/gatehouse-dev/gatehouse/web => ../web
)
