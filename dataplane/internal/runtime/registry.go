package runtime

import (
	"net/url"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
)

// MCPServer is a compiled upstream MCP server. Its tools appear in a team's virtual MCP
// server prefixed with Name.
type MCPServer struct {
	ID        string
	Name      string
	URL       *url.URL
	Transport gatehousev1.McpTransport
	// AuthHeader and Credential are what the MCP proxy sends upstream (never the
	// caller's key).
	AuthHeader string
	Credential string

	// nil means every team of the org.
	teams map[string]struct{}
}

// Agent is a compiled upstream A2A agent, served under /a2a/{Name}.
type Agent struct {
	ID      string
	Name    string
	CardURL *url.URL
	// AuthHeader and Credential are what the A2A proxy sends upstream.
	AuthHeader string
	Credential string

	// nil means every team of the org.
	teams map[string]struct{}
}

func visible(teams map[string]struct{}, teamID string) bool {
	if teams == nil {
		return true
	}
	_, ok := teams[teamID]
	return ok
}

// MCPServersForTeam returns the MCP servers the team may use, sorted by name.
func (o *Org) MCPServersForTeam(teamID string) []*MCPServer {
	var out []*MCPServer
	for _, s := range o.mcpList {
		if visible(s.teams, teamID) {
			out = append(out, s)
		}
	}
	return out
}

// MCPServerForTeam returns the MCP server of that name if the team may use it.
func (o *Org) MCPServerForTeam(teamID, name string) (*MCPServer, bool) {
	s, ok := o.mcpServers[name]
	if !ok || !visible(s.teams, teamID) {
		return nil, false
	}
	return s, true
}

// AgentsForTeam returns the A2A agents the team may use, sorted by name.
func (o *Org) AgentsForTeam(teamID string) []*Agent {
	var out []*Agent
	for _, a := range o.agentList {
		if visible(a.teams, teamID) {
			out = append(out, a)
		}
	}
	return out
}

// AgentForTeam returns the A2A agent of that name if the team may use it.
func (o *Org) AgentForTeam(teamID, name string) (*Agent, bool) {
	a, ok := o.agents[name]
	if !ok || !visible(a.teams, teamID) {
		return nil, false
	}
	return a, true
}
