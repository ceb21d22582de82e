// Package store is the control plane's system of record: organizations, teams, keys,
// providers and models in Postgres. Every change runs in one transaction that also
// writes its audit row and a config outbox row, so a committed change is always
// audited and always republished. Generated sqlc code stays in dbq; callers see only
// the domain types of this package.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store/dbq"
	"github.com/gatehouse-dev/gatehouse/proto/wire"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNotFound means the addressed row does not exist (or belongs to another org).
var ErrNotFound = errors.New("not found")

// ValidationError lists what is wrong with an input, field by field. It also reports
// uniqueness conflicts, which callers show as 409.
type ValidationError struct {
	Conflict bool
	Fields   map[string]string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("invalid input: %v", e.Fields)
}

func invalid(field, msg string) *ValidationError {
	return &ValidationError{Fields: map[string]string{field: msg}}
}

// Store reads and writes the control plane's tables.
type Store struct {
	pool           *pgxpool.Pool
	secrets        *wire.Keyring
	now            func() time.Time
	resolver       Resolver
	allowLinkLocal bool
}

// Option configures a Store.
type Option func(*Store)

// AllowLinkLocalUpstreams lets upstream URLs point at link-local and cloud metadata
// addresses (a platform setting; off by default).
func AllowLinkLocalUpstreams(allow bool) Option { return func(s *Store) { s.allowLinkLocal = allow } }

// WithResolver sets the DNS resolver used to vet upstream hosts.
func WithResolver(r Resolver) Option { return func(s *Store) { s.resolver = r } }

// New returns a Store. secrets seals upstream credentials at rest.
func New(pool *pgxpool.Pool, secrets *wire.Keyring, opts ...Option) *Store {
	s := &Store{pool: pool, secrets: secrets, now: time.Now, resolver: net.DefaultResolver}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Pool exposes the pool for packages that write their own tables (usage ingest).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Actor names who makes a change, for the audit log.
type Actor string

// change is one audited, outboxed mutation.
type change struct {
	actor      Actor
	orgID      string
	action     string
	targetType string
	targetID   string
	before     any
	after      any
	// configless changes do not touch gateway config (no outbox row).
	configless bool
	// rbac changes alter role assignments; authorizers on every replica reload.
	rbac bool
}

// RBACChannel is the Postgres channel notified when role assignments change.
const RBACChannel = "gatehouse_rbac"

// inTx runs fn in a transaction and then records ch (audit + outbox) in the same
// transaction. fn fills in ch's target and snapshots.
func (s *Store) inTx(ctx context.Context, fn func(q *dbq.Queries, ch *change) error, ch change) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit
	q := dbq.New(tx)
	if err := fn(q, &ch); err != nil {
		return mapError(err)
	}
	before, err := jsonOrNil(ch.before)
	if err != nil {
		return err
	}
	after, err := jsonOrNil(ch.after)
	if err != nil {
		return err
	}
	var orgID *string
	if ch.orgID != "" {
		orgID = &ch.orgID
	}
	if err := q.InsertAudit(ctx, dbq.InsertAuditParams{
		Actor: string(ch.actor), OrgID: orgID, Action: ch.action,
		TargetType: ch.targetType, TargetID: ch.targetID, Before: before, After: after,
	}); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if ch.rbac {
		if _, err := tx.Exec(ctx, "select pg_notify($1, '')", RBACChannel); err != nil {
			return fmt.Errorf("notify rbac: %w", err)
		}
	}
	if ch.orgID != "" && !ch.configless {
		if err := q.EnqueueConfig(ctx, dbq.EnqueueConfigParams{OrgID: ch.orgID, Reason: ch.action}); err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return mapError(fmt.Errorf("commit: %w", err))
	}
	return nil
}

func jsonOrNil(v any) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("audit: encode: %w", err)
	}
	return b, nil
}

// constraintFields maps named constraints to the field and message a caller sees.
var constraintFields = map[string][2]string{
	"organizations_slug_uq":         {"slug", "an organization with this slug already exists"},
	"teams_org_slug_uq":             {"slug", "a team with this slug already exists in the organization"},
	"providers_org_name_uq":         {"name", "a provider with this name already exists in the organization"},
	"models_org_name_uq":            {"name", "a model with this name already exists in the organization"},
	"models_provider_fk":            {"provider_id", "no such provider in this organization"},
	"api_keys_team_fk":              {"team_id", "no such team in this organization"},
	"organizations_slug_ck":         {"slug", "use 1-63 lower-case letters, digits and dashes, starting with a letter or digit"},
	"teams_slug_ck":                 {"slug", "use 1-63 lower-case letters, digits and dashes, starting with a letter or digit"},
	"models_name_ck":                {"name", "use letters, digits and . _ : / -, up to 128 characters"},
	"organizations_name_ck":         {"name", "must be 1 to 200 characters"},
	"teams_name_ck":                 {"name", "must be 1 to 200 characters"},
	"providers_name_ck":             {"name", "must be 1 to 200 characters"},
	"api_keys_name_ck":              {"name", "must be 1 to 200 characters"},
	"models_upstream_model_ck":      {"upstream_model", "must be 1 to 200 characters"},
	"models_prices_ck":              {"prices", "prices cannot be negative"},
	"providers_type_ck":             {"type", "unsupported provider type"},
	"api_keys_secret_sha256_uq":     {"key", "key collision; try again"},
	"teams_org_fk":                  {"org", "no such organization"},
	"providers_org_fk":              {"org", "no such organization"},
	"models_org_fk":                 {"org", "no such organization"},
	"api_keys_secret_sha256_len_ck": {"key", "bad key hash"},

	// Microsoft Entra ID providers (checked before the write; these catch what slips by).
	"providers_azure_entra_pair_ck":   {"azure_tenant_id", "azure_tenant_id and azure_client_id are set together or not at all"},
	"providers_azure_entra_type_ck":   {"azure_tenant_id", "is only for azure-openai providers"},
	"providers_azure_entra_secret_ck": {"api_key", entraSecretRequired},
}

// inUse turns a delete blocked by a foreign key (the row is still referenced) into a
// conflict that says what still uses it; other errors pass through.
func inUse(err error, msg string) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23503" {
		return &ValidationError{Conflict: true, Fields: map[string]string{"in_use": msg}}
	}
	return err
}

// mapError turns pgx.ErrNoRows and named constraint violations into domain errors,
// once, here.
func mapError(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		if f, ok := constraintFields[pgErr.ConstraintName]; ok {
			return &ValidationError{Conflict: pgErr.Code == "23505", Fields: map[string]string{f[0]: f[1]}}
		}
		if pgErr.Code == "22P02" { // invalid_text_representation, e.g. a malformed uuid
			return ErrNotFound
		}
	}
	return err
}

func timePtr(ts pgtype.Timestamptz) *time.Time {
	if !ts.Valid {
		return nil
	}
	t := ts.Time.UTC()
	return &t
}

func tsOrNull(t *time.Time) pgtype.Timestamptz {
	if t == nil {
		return pgtype.Timestamptz{}
	}
	return pgtype.Timestamptz{Time: *t, Valid: true}
}
