package cptest

import (
	"context"
	"log/slog"
	"testing"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/rbac"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store"
)

// Authorizer returns an authorizer over st.
func Authorizer(t testing.TB, st *store.Store) *rbac.Authorizer {
	t.Helper()
	a, err := rbac.New(context.Background(), st, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return a
}
