module github.com/gatehouse-dev/gatehouse/e2e

go 1.26

replace (
	github.com/gatehouse-dev/gatehouse/controlplane => ../controlplane
	github.com/gatehouse-dev/gatehouse/dataplane => ../dataplane
	github.com/gatehouse-dev/gatehouse/migrations => ../migrations
	github.com/gatehouse-dev/gatehouse/proto => ../proto
	github.com/gatehouse-dev/gatehouse/web => ../web
)

require github.com/jackc/pgx/v5 v5.12.0

require (
	github.com/jackc/pgpassfile v1.0.0 // indirect
	github.com/jackc/pgservicefile v0.0.0-20240606120523-5a60cdf6a761 // indirect
	golang.org/x/text v0.41.0 // indirect
)
