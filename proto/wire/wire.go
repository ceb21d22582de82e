// Package wire names the NATS contract between the control plane and the gateways:
// subjects, buckets, streams, the capability version and the encrypted config envelope.
// Both planes import it; it holds no behaviour beyond encoding.
package wire

import (
	"fmt"
	"strings"
)

// Capability is the gateway capability version. A snapshot whose
// min_gateway_capability exceeds it is refused by the gateway.
//
// History:
//
//	1: 2026-11-21 first snapshot: orgs, teams, keys, providers, models.
//	2: 2026-11-21 registry: provider types anthropic/azure-openai/gemini, model context
//	   windows and regions (other_region_models), team regions and aliases, key
//	   narrowing (agent identity, tools, agents, regions), MCP servers, A2A agents.
//	3: 2026-11-21 LLM gateway: limits (key, team, model), guardrail rules and content
//	   logging per team, model deployments, routing and fallbacks.
//	4: 2026-11-22 Azure OpenAI providers authenticated by Microsoft Entra ID
//	   (Provider.azure_entra).
const Capability uint32 = 4

const (
	// ConfigBucket is the JetStream KV bucket holding one encrypted snapshot per
	// (region, org) under ConfigKey.
	ConfigBucket = "gatehouse_config"
	// UsageStream is the JetStream stream gateways publish usage batches to.
	UsageStream = "USAGE"
	// UsageSubjects is the subject filter of UsageStream.
	UsageSubjects = "usage.>"
	// GlobalConfigID is the org part of the platform-wide config key.
	GlobalConfigID = "_global"
)

// ConfigKey is the KV key of an org's snapshot for a region.
func ConfigKey(region, orgID string) string { return "cfg." + region + "." + orgID }

// ConfigWatchPattern matches every config key of a region.
func ConfigWatchPattern(region string) string { return "cfg." + region + ".>" }

// OrgFromConfigKey returns the org id of a config key of region, or false when the key
// belongs to another region or is malformed.
func OrgFromConfigKey(region, key string) (string, bool) {
	org, ok := strings.CutPrefix(key, "cfg."+region+".")
	if !ok || org == "" || strings.Contains(org, ".") {
		return "", false
	}
	return org, true
}

// UsageSubject is the subject a gateway publishes an org's usage batches on.
func UsageSubject(region, orgID string) string { return "usage." + region + "." + orgID }

// StatusSubject is the subject of a gateway's heartbeats.
func StatusSubject(region, gatewayID string) string { return "status." + region + "." + gatewayID }

// StatusWildcard matches every heartbeat of every region.
const StatusWildcard = "status.>"

// ValidRegion reports whether s can be used as a region name: it becomes a subject and
// key token, so it is restricted to lower-case letters, digits and dashes.
func ValidRegion(s string) error {
	if s == "" || len(s) > 32 {
		return fmt.Errorf("region %q: must be 1 to 32 characters", s)
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return fmt.Errorf("region %q: only a-z, 0-9 and '-' are allowed", s)
		}
	}
	return nil
}
