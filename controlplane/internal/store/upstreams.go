package store

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store/dbq"
)

// MCPServer is an upstream MCP server as listed (never the credential).
type MCPServer struct {
	ID            string    `json:"id"`
	Name          string    `json:"name"`
	URL           string    `json:"url"`
	Transport     string    `json:"transport"`
	AuthHeader    string    `json:"auth_header"`
	HasCredential bool      `json:"has_credential"`
	SharedWith    Sharing   `json:"shared_with"`
	CreatedAt     time.Time `json:"created_at"`
}

// NewMCPServer describes a server to register.
type NewMCPServer struct {
	Name, URL, Transport, AuthHeader, Credential string
	Share                                        *Sharing
}

// Agent is an upstream A2A agent as listed.
type Agent struct {
	ID            string    `json:"id"`
	Name          string    `json:"name"`
	CardURL       string    `json:"card_url"`
	AuthHeader    string    `json:"auth_header"`
	HasCredential bool      `json:"has_credential"`
	SharedWith    Sharing   `json:"shared_with"`
	CreatedAt     time.Time `json:"created_at"`
}

// NewAgent describes an agent to register.
type NewAgent struct {
	Name, CardURL, AuthHeader, Credential string
	Share                                 *Sharing
}

var headerRE = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)

func mcpFromRow(r dbq.McpServer) MCPServer {
	return MCPServer{ID: r.ID, Name: r.Name, URL: r.Url, Transport: r.Transport, AuthHeader: r.AuthHeader,
		HasCredential: r.CredentialSealed != nil, SharedWith: Sharing{All: r.SharedWithAll, Teams: []string{}}, CreatedAt: r.CreatedAt.Time.UTC()}
}

func agentFromRow(r dbq.A2aAgent) Agent {
	return Agent{ID: r.ID, Name: r.Name, CardURL: r.CardUrl, AuthHeader: r.AuthHeader,
		HasCredential: r.CredentialSealed != nil, SharedWith: Sharing{All: r.SharedWithAll, Teams: []string{}}, CreatedAt: r.CreatedAt.Time.UTC()}
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// CreateMCPServer registers an MCP server.
func (s *Store) CreateMCPServer(ctx context.Context, actor Actor, orgID string, in NewMCPServer) (MCPServer, error) {
	in.Name, in.URL = strings.TrimSpace(in.Name), strings.TrimSpace(in.URL)
	if in.Transport == "" {
		in.Transport = "streamable-http"
	}
	if in.AuthHeader == "" {
		in.AuthHeader = "Authorization"
	}
	fields := map[string]string{}
	if !nameRE.MatchString(in.Name) {
		fields["name"] = "use 1-63 lower-case letters, digits, _ and -"
	}
	if !slices.Contains([]string{"streamable-http", "sse"}, in.Transport) {
		fields["transport"] = "must be streamable-http or sse"
	}
	if !headerRE.MatchString(in.AuthHeader) {
		fields["auth_header"] = "must be an HTTP header name"
	}
	if err := s.checkUpstreamURL(ctx, "url", in.URL); err != nil {
		fields["url"] = err.(*ValidationError).Fields["url"]
	}
	if len(fields) > 0 {
		return MCPServer{}, &ValidationError{Fields: fields}
	}
	sealed, kid, err := s.seal(in.Credential, entryAAD("mcp", orgID))
	if err != nil {
		return MCPServer{}, err
	}
	var out MCPServer
	err = s.inTx(ctx, func(q *dbq.Queries, ch *change) error {
		all, teams, err := s.share(ctx, q, orgID, in.Share)
		if err != nil {
			return err
		}
		row, err := q.CreateMCPServer(ctx, dbq.CreateMCPServerParams{OrgID: orgID, Name: in.Name, Url: in.URL, Transport: in.Transport,
			AuthHeader: in.AuthHeader, CredentialSealed: sealed, CredentialKeyID: kid, SharedWithAll: all})
		if err != nil {
			return err
		}
		if err := setShares(ctx, q, orgID, "mcp_server", row.ID, teams); err != nil {
			return err
		}
		out = mcpFromRow(row)
		out.SharedWith.Teams = append(out.SharedWith.Teams, teams...)
		ch.targetID, ch.after = out.ID, out
		return nil
	}, change{actor: actor, orgID: orgID, action: "mcp_server.create", targetType: "mcp_server"})
	return out, err
}

// ListMCPServers lists org's MCP servers.
func (s *Store) ListMCPServers(ctx context.Context, orgID string) ([]MCPServer, error) {
	q := dbq.New(s.pool)
	rows, err := q.ListMCPServers(ctx, orgID)
	if err != nil {
		return nil, mapError(err)
	}
	sh, err := s.shares(ctx, q, orgID)
	if err != nil {
		return nil, mapError(err)
	}
	out := make([]MCPServer, len(rows))
	for i, r := range rows {
		out[i] = mcpFromRow(r)
		fillShare(&out[i].SharedWith, sh["mcp_server"], r.ID)
	}
	return out, nil
}

// DeleteMCPServer deletes an MCP server.
func (s *Store) DeleteMCPServer(ctx context.Context, actor Actor, orgID, id string) error {
	return s.inTx(ctx, func(q *dbq.Queries, ch *change) error {
		row, err := q.DeleteMCPServer(ctx, dbq.DeleteMCPServerParams{ID: id, OrgID: orgID})
		if err != nil {
			return err
		}
		ch.before = mcpFromRow(row)
		return q.DeleteShares(ctx, dbq.DeleteSharesParams{Kind: "mcp_server", EntryID: id})
	}, change{actor: actor, orgID: orgID, action: "mcp_server.delete", targetType: "mcp_server", targetID: id})
}

// CreateAgent registers an A2A agent.
func (s *Store) CreateAgent(ctx context.Context, actor Actor, orgID string, in NewAgent) (Agent, error) {
	in.Name, in.CardURL = strings.TrimSpace(in.Name), strings.TrimSpace(in.CardURL)
	if in.AuthHeader == "" {
		in.AuthHeader = "Authorization"
	}
	fields := map[string]string{}
	if !nameRE.MatchString(in.Name) {
		fields["name"] = "use 1-63 lower-case letters, digits, _ and -"
	}
	if !headerRE.MatchString(in.AuthHeader) {
		fields["auth_header"] = "must be an HTTP header name"
	}
	if err := s.checkUpstreamURL(ctx, "card_url", in.CardURL); err != nil {
		fields["card_url"] = err.(*ValidationError).Fields["card_url"]
	}
	if len(fields) > 0 {
		return Agent{}, &ValidationError{Fields: fields}
	}
	sealed, kid, err := s.seal(in.Credential, entryAAD("a2a", orgID))
	if err != nil {
		return Agent{}, err
	}
	var out Agent
	err = s.inTx(ctx, func(q *dbq.Queries, ch *change) error {
		all, teams, err := s.share(ctx, q, orgID, in.Share)
		if err != nil {
			return err
		}
		row, err := q.CreateAgent(ctx, dbq.CreateAgentParams{OrgID: orgID, Name: in.Name, CardUrl: in.CardURL,
			AuthHeader: in.AuthHeader, CredentialSealed: sealed, CredentialKeyID: kid, SharedWithAll: all})
		if err != nil {
			return err
		}
		if err := setShares(ctx, q, orgID, "a2a_agent", row.ID, teams); err != nil {
			return err
		}
		out = agentFromRow(row)
		out.SharedWith.Teams = append(out.SharedWith.Teams, teams...)
		ch.targetID, ch.after = out.ID, out
		return nil
	}, change{actor: actor, orgID: orgID, action: "a2a_agent.create", targetType: "a2a_agent"})
	return out, err
}

// ListAgents lists org's A2A agents.
func (s *Store) ListAgents(ctx context.Context, orgID string) ([]Agent, error) {
	q := dbq.New(s.pool)
	rows, err := q.ListAgents(ctx, orgID)
	if err != nil {
		return nil, mapError(err)
	}
	sh, err := s.shares(ctx, q, orgID)
	if err != nil {
		return nil, mapError(err)
	}
	out := make([]Agent, len(rows))
	for i, r := range rows {
		out[i] = agentFromRow(r)
		fillShare(&out[i].SharedWith, sh["a2a_agent"], r.ID)
	}
	return out, nil
}

// DeleteAgent deletes an A2A agent.
func (s *Store) DeleteAgent(ctx context.Context, actor Actor, orgID, id string) error {
	return s.inTx(ctx, func(q *dbq.Queries, ch *change) error {
		row, err := q.DeleteAgent(ctx, dbq.DeleteAgentParams{ID: id, OrgID: orgID})
		if err != nil {
			return err
		}
		ch.before = agentFromRow(row)
		return q.DeleteShares(ctx, dbq.DeleteSharesParams{Kind: "a2a_agent", EntryID: id})
	}, change{actor: actor, orgID: orgID, action: "a2a_agent.delete", targetType: "a2a_agent", targetID: id})
}

// SetTeamSuspended suspends or resumes a team; every gateway refuses its keys within
// a second of the change.
func (s *Store) SetTeamSuspended(ctx context.Context, actor Actor, orgID, teamID string, suspended bool) (Team, error) {
	var out Team
	action := "team.resume"
	if suspended {
		action = "team.suspend"
	}
	err := s.inTx(ctx, func(q *dbq.Queries, ch *change) error {
		before, err := q.GetTeam(ctx, dbq.GetTeamParams{ID: teamID, OrgID: orgID})
		if err != nil {
			return err
		}
		row, err := q.SetTeamSuspended(ctx, dbq.SetTeamSuspendedParams{ID: teamID, OrgID: orgID, Suspended: suspended})
		if err != nil {
			return err
		}
		out = teamFromRow(row)
		ch.before, ch.after = teamFromRow(before), out
		return nil
	}, change{actor: actor, orgID: orgID, action: action, targetType: "team", targetID: teamID})
	return out, err
}

// SetTeamRegions sets the regions a team's virtual gateway may be used in (none = all).
func (s *Store) SetTeamRegions(ctx context.Context, actor Actor, orgID, teamID string, regions []string) (Team, error) {
	regions, err := s.checkRegions(ctx, "regions", regions)
	if err != nil {
		return Team{}, err
	}
	var out Team
	err = s.inTx(ctx, func(q *dbq.Queries, ch *change) error {
		before, err := q.GetTeam(ctx, dbq.GetTeamParams{ID: teamID, OrgID: orgID})
		if err != nil {
			return err
		}
		row, err := q.SetTeamRegions(ctx, dbq.SetTeamRegionsParams{ID: teamID, OrgID: orgID, Regions: regions})
		if err != nil {
			return err
		}
		out = teamFromRow(row)
		ch.before, ch.after = teamFromRow(before), out
		return nil
	}, change{actor: actor, orgID: orgID, action: "team.regions", targetType: "team", targetID: teamID})
	return out, err
}

// Alias is a team-local model name.
type Alias struct {
	TeamID  string `json:"team_id"`
	Alias   string `json:"alias"`
	ModelID string `json:"model_id"`
	Model   string `json:"model"`
}

// CreateAlias gives a team a local name for one of the org's models.
func (s *Store) CreateAlias(ctx context.Context, actor Actor, orgID, teamID, alias, model string) (Alias, error) {
	alias = strings.TrimSpace(alias)
	models, err := s.ListModels(ctx, orgID)
	if err != nil {
		return Alias{}, err
	}
	var target *Model
	for i := range models {
		if models[i].ID == model || models[i].Name == model {
			target = &models[i]
		}
	}
	if target == nil {
		return Alias{}, invalid("model", "no such model in this organization")
	}
	if alias == target.Name {
		return Alias{}, invalid("alias", "an alias must differ from the model's name")
	}
	var out Alias
	err = s.inTx(ctx, func(q *dbq.Queries, ch *change) error {
		row, err := q.CreateAlias(ctx, dbq.CreateAliasParams{TeamID: teamID, OrgID: orgID, Alias: alias, ModelID: target.ID})
		if err != nil {
			return err
		}
		out = Alias{TeamID: row.TeamID, Alias: row.Alias, ModelID: row.ModelID, Model: target.Name}
		ch.targetID, ch.after = teamID+"/"+alias, out
		return nil
	}, change{actor: actor, orgID: orgID, action: "alias.create", targetType: "alias"})
	return out, err
}

// DeleteAlias removes a team alias.
func (s *Store) DeleteAlias(ctx context.Context, actor Actor, orgID, teamID, alias string) error {
	return s.inTx(ctx, func(q *dbq.Queries, ch *change) error {
		row, err := q.DeleteAlias(ctx, dbq.DeleteAliasParams{TeamID: teamID, Alias: alias})
		if err != nil {
			return err
		}
		ch.before = Alias{TeamID: row.TeamID, Alias: row.Alias, ModelID: row.ModelID}
		return nil
	}, change{actor: actor, orgID: orgID, action: "alias.delete", targetType: "alias", targetID: teamID + "/" + alias})
}

// ListAliases lists the aliases of every team of org.
func (s *Store) ListAliases(ctx context.Context, orgID string) ([]Alias, error) {
	rows, err := dbq.New(s.pool).ListAliases(ctx, orgID)
	if err != nil {
		return nil, mapError(err)
	}
	out := make([]Alias, len(rows))
	for i, r := range rows {
		out[i] = Alias{TeamID: r.TeamID, Alias: r.Alias, ModelID: r.ModelID, Model: r.ModelName}
	}
	return out, nil
}
