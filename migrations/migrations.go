// Package migrations embeds Gatehouse's forward-only goose SQL migrations. It holds no
// code that applies them; the control plane does that with goose's Provider API.
package migrations

import "embed"

// FS holds every migration file at its root.
//
//go:embed *.sql
var FS embed.FS
