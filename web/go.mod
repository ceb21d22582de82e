module github.com/gatehouse-dev/gatehouse/web

go 1.26

require github.com/a-h/templ v0.3.977
