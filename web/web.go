// Package web holds the console's views: templ components taking view models, and the
// static assets they use, embedded. It has no database access and no routing.
package web

import "embed"

// Static holds the console's CSS and images, served under /static/.
//
//go:embed static
var Static embed.FS
