module github.com/gatehouse-dev/gatehouse/e2e

go 1.26

replace (
	github.com/gatehouse-dev/gatehouse/controlplane => ../controlplane
	github.com/gatehouse-dev/gatehouse/dataplane => ../dataplane
	github.com/gatehouse-dev/gatehouse/migrations => ../migrations
	github.com/gatehouse-dev/gatehouse/proto => ../proto
	github.com/gatehouse-dev/gatehouse/web => ../web
)
