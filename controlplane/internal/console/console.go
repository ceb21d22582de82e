// Package console serves the server-rendered console pages: it gathers view models and
// renders templ components from the web module. Pages that manage data arrive with
// sign-in (SSO); today it serves the status page and static assets.
package console

import (
	"context"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/gatehouse-dev/gatehouse/web"
	webconsole "github.com/gatehouse-dev/gatehouse/web/console"
	"github.com/go-chi/chi/v5"
)

// Health reports whether the control plane's dependencies answer.
type Health interface {
	DatabaseOK(ctx context.Context) bool
	NATSOK() bool
}

// Console serves the console.
type Console struct {
	health  Health
	version string
	regions []string
	log     *slog.Logger
}

// New returns the console.
func New(h Health, version string, regions []string, log *slog.Logger) *Console {
	return &Console{health: h, version: version, regions: regions, log: log}
}

// Routes mounts the console on r.
func (c *Console) Routes(r chi.Router) {
	static, err := fs.Sub(web.Static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	r.Handle("/static/*", http.StripPrefix("/static/", http.FileServerFS(static)))
	r.Get("/", c.home)
}

func (c *Console) home(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	v := webconsole.HomeView{
		Version: c.version, DatabaseOK: c.health.DatabaseOK(ctx), NATSOK: c.health.NATSOK(),
		Regions: c.regions, APIDocsPath: "/api/v1/openapi.json",
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := webconsole.Home(v).Render(r.Context(), w); err != nil {
		c.log.Error("render home", "error", err)
	}
}
