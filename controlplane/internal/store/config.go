package store

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store/dbq"
	"github.com/jackc/pgx/v5"
)

// OrgConfig is everything the config compiler needs about one org, read in one
// repeatable-read transaction so it is self-consistent. Credentials are opened.
type OrgConfig struct {
	Org         Org
	Epoch       uint64
	Version     uint64
	Teams       []Team
	Aliases     []Alias
	Keys        []ActiveKey
	Providers   []ProviderWithSecret
	Models      []Model
	MCPServers  []MCPServerWithSecret
	Agents      []AgentWithSecret
	Deployments []Deployment
	Guardrails  []Guardrail
}

// MCPServerWithSecret carries the opened credential, for the encrypted snapshot only.
type MCPServerWithSecret struct {
	MCPServer
	Credential string
}

// AgentWithSecret carries the opened credential, for the encrypted snapshot only.
type AgentWithSecret struct {
	Agent
	Credential string
}

// ActiveKey is a key the gateways must accept: not revoked, not expired.
type ActiveKey struct {
	Key
	SecretSHA256 []byte
}

// ProviderWithSecret carries the opened credential, for the encrypted snapshot only.
type ProviderWithSecret struct {
	Provider
	APIKey string
}

// LoadOrgConfig reads org's configuration and assigns it the next config version.
func (s *Store) LoadOrgConfig(ctx context.Context, orgID string) (OrgConfig, error) {
	var out OrgConfig
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		q := dbq.New(tx)
		orgRow, err := q.GetOrg(ctx, orgID)
		if err != nil {
			return err
		}
		out.Org = orgFromRow(orgRow)
		epoch, err := q.GetEpoch(ctx)
		if err != nil {
			return err
		}
		version, err := q.BumpOrgConfigVersion(ctx, orgID)
		if err != nil {
			return err
		}
		out.Epoch, out.Version = uint64(epoch), uint64(version)
		teams, err := q.ListTeams(ctx, orgID)
		if err != nil {
			return err
		}
		for _, t := range teams {
			out.Teams = append(out.Teams, teamFromRow(t))
		}
		keys, err := q.ListActiveKeysForOrg(ctx, orgID)
		if err != nil {
			return err
		}
		for _, k := range keys {
			out.Keys = append(out.Keys, ActiveKey{Key: keyFromRow(k), SecretSHA256: k.SecretSha256})
		}
		providers, err := q.ListProviders(ctx, orgID)
		if err != nil {
			return err
		}
		for _, p := range providers {
			pw := ProviderWithSecret{Provider: providerFromRow(p)}
			if p.ApiKeySealed != nil && p.ApiKeyKeyID != nil {
				plain, err := s.secrets.OpenBytes(*p.ApiKeyKeyID, p.ApiKeySealed, providerAAD(orgID, p.AzureTenantID != ""))
				if err != nil {
					return fmt.Errorf("provider %s credential: %w", p.ID, err)
				}
				pw.APIKey = string(plain)
			}
			out.Providers = append(out.Providers, pw)
		}
		sh, err := s.shares(ctx, q, orgID)
		if err != nil {
			return err
		}
		for i := range out.Providers {
			fillShare(&out.Providers[i].SharedWith, sh["provider"], out.Providers[i].ID)
		}
		models, err := q.ListModels(ctx, orgID)
		if err != nil {
			return err
		}
		for _, m := range models {
			mm := modelFromRow(m)
			fillShare(&mm.SharedWith, sh["model"], m.ID)
			out.Models = append(out.Models, mm)
		}
		aliases, err := q.ListAliases(ctx, orgID)
		if err != nil {
			return err
		}
		for _, a := range aliases {
			out.Aliases = append(out.Aliases, Alias{TeamID: a.TeamID, Alias: a.Alias, ModelID: a.ModelID, Model: a.ModelName})
		}
		servers, err := q.ListMCPServers(ctx, orgID)
		if err != nil {
			return err
		}
		for _, m := range servers {
			ms := MCPServerWithSecret{MCPServer: mcpFromRow(m)}
			fillShare(&ms.SharedWith, sh["mcp_server"], m.ID)
			if ms.Credential, err = s.open(m.CredentialSealed, m.CredentialKeyID, entryAAD("mcp", orgID)); err != nil {
				return fmt.Errorf("mcp server %s credential: %w", m.ID, err)
			}
			out.MCPServers = append(out.MCPServers, ms)
		}
		deps, err := q.ListDeployments(ctx, orgID)
		if err != nil {
			return err
		}
		for _, d := range deps {
			out.Deployments = append(out.Deployments, deploymentFromRow(d))
		}
		rules, err := q.ListGuardrails(ctx, orgID)
		if err != nil {
			return err
		}
		for _, g := range rules {
			out.Guardrails = append(out.Guardrails, guardrailFromRow(g))
		}
		agents, err := q.ListAgents(ctx, orgID)
		if err != nil {
			return err
		}
		for _, a := range agents {
			as := AgentWithSecret{Agent: agentFromRow(a)}
			fillShare(&as.SharedWith, sh["a2a_agent"], a.ID)
			if as.Credential, err = s.open(a.CredentialSealed, a.CredentialKeyID, entryAAD("a2a", orgID)); err != nil {
				return fmt.Errorf("agent %s credential: %w", a.ID, err)
			}
			out.Agents = append(out.Agents, as)
		}
		return nil
	})
	if err != nil {
		return OrgConfig{}, fmt.Errorf("load org config: %w", mapError(err))
	}
	return out, nil
}

// open opens a sealed credential ("" when none is stored).
func (s *Store) open(sealed []byte, keyID *string, aad []byte) (string, error) {
	if sealed == nil || keyID == nil {
		return "", nil
	}
	plain, err := s.secrets.OpenBytes(*keyID, sealed, aad)
	return string(plain), err
}

// PendingOrg is an org with unpublished changes up to outbox row MaxID.
type PendingOrg struct {
	OrgID string
	MaxID int64
}

// PendingConfig lists orgs with outbox rows, oldest first.
func (s *Store) PendingConfig(ctx context.Context, limit int32) ([]PendingOrg, error) {
	rows, err := dbq.New(s.pool).PendingConfig(ctx, limit)
	if err != nil {
		return nil, mapError(err)
	}
	out := make([]PendingOrg, len(rows))
	for i, r := range rows {
		out[i] = PendingOrg{OrgID: r.OrgID, MaxID: r.MaxID}
	}
	return out, nil
}

// AckConfig deletes org's outbox rows up to maxID once its snapshot is published.
func (s *Store) AckConfig(ctx context.Context, p PendingOrg) error {
	return mapError(dbq.New(s.pool).AckConfig(ctx, dbq.AckConfigParams{OrgID: p.OrgID, ID: p.MaxID}))
}

// EnqueueAllOrgs adds an outbox row for every org, so a starting control plane
// republishes everything (KV may have been wiped, or a region added).
func (s *Store) EnqueueAllOrgs(ctx context.Context, reason string) error {
	_, err := s.pool.Exec(ctx, `insert into config_outbox (org_id, reason) select id, $1 from organizations`, reason)
	return mapError(err)
}

// AuditEntry is one row of the audit log.
type AuditEntry struct {
	ID         int64           `json:"id"`
	At         string          `json:"at"`
	Actor      string          `json:"actor"`
	OrgID      *string         `json:"org_id,omitempty"`
	Action     string          `json:"action"`
	TargetType string          `json:"target_type"`
	TargetID   string          `json:"target_id"`
	Before     json.RawMessage `json:"before,omitempty"`
	After      json.RawMessage `json:"after,omitempty"`
}
