package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store/dbq"
	"github.com/jackc/pgx/v5/pgtype"
)

// GatewayOrgState is what a gateway reports about one org's config.
type GatewayOrgState struct {
	OrgID           string `json:"org_id"`
	AppliedEpoch    uint64 `json:"applied_epoch"`
	AppliedVersion  uint64 `json:"applied_version"`
	AppliedSHA256   string `json:"applied_sha256,omitempty"`
	RejectedVersion uint64 `json:"rejected_version,omitempty"`
	RejectedReason  string `json:"rejected_reason,omitempty"`
}

// GatewayHeartbeat is a gateway's last status.
type GatewayHeartbeat struct {
	GatewayID    string
	Region       string
	BuildVersion string
	Capability   int32
	StartedAt    time.Time
	SeenAt       time.Time
	Ready        bool
	InFlight     int64
	Orgs         []GatewayOrgState
}

// RecordHeartbeat stores a gateway's latest heartbeat.
func (s *Store) RecordHeartbeat(ctx context.Context, h GatewayHeartbeat) error {
	orgs, err := json.Marshal(h.Orgs)
	if err != nil {
		return err
	}
	return mapError(dbq.New(s.pool).UpsertGateway(ctx, dbq.UpsertGatewayParams{
		GatewayID: h.GatewayID, Region: h.Region, BuildVersion: h.BuildVersion, Capability: h.Capability,
		StartedAt: pgtype.Timestamptz{Time: h.StartedAt, Valid: !h.StartedAt.IsZero()}, LastSeenAt: ts(h.SeenAt),
		Ready: h.Ready, InFlight: h.InFlight, Orgs: orgs,
	}))
}

// ForgetGateways drops gateways not seen since before.
func (s *Store) ForgetGateways(ctx context.Context, before time.Time) error {
	return mapError(dbq.New(s.pool).ForgetGateways(ctx, ts(before)))
}

// Gateway liveness, from the age of the last heartbeat (sent every 5 s).
const (
	GatewayLive  = "live"
	GatewayStale = "stale"
	GatewayGone  = "gone"
)

// FleetGateway is one gateway as the fleet page shows it for an org.
type FleetGateway struct {
	GatewayID    string          `json:"gateway_id"`
	BuildVersion string          `json:"build_version"`
	Capability   int32           `json:"capability"`
	Ready        bool            `json:"ready"`
	InFlight     int64           `json:"in_flight"`
	LastSeen     time.Time       `json:"last_seen"`
	Status       string          `json:"status"`
	Org          GatewayOrgState `json:"org"`
	// Lag is how many published versions of this org the gateway is behind; -1 when it
	// has none of the current epoch.
	Lag int64 `json:"lag"`
}

// FleetRegion groups a region's gateways.
type FleetRegion struct {
	Name     string         `json:"name"`
	Live     int            `json:"live"`
	Gateways []FleetGateway `json:"gateways"`
}

// Fleet is the fleet as seen by one org.
type Fleet struct {
	LatestVersion uint64        `json:"latest_version"`
	Epoch         uint64        `json:"epoch"`
	Regions       []FleetRegion `json:"regions"`
}

// Fleet returns every region and gateway with org's config state on each.
func (s *Store) Fleet(ctx context.Context, orgID string, now time.Time) (Fleet, error) {
	q := dbq.New(s.pool)
	org, err := q.GetOrg(ctx, orgID)
	if err != nil {
		return Fleet{}, mapError(err)
	}
	epoch, err := q.GetEpoch(ctx)
	if err != nil {
		return Fleet{}, mapError(err)
	}
	regions, err := q.ListRegions(ctx)
	if err != nil {
		return Fleet{}, mapError(err)
	}
	rows, err := q.ListGateways(ctx)
	if err != nil {
		return Fleet{}, mapError(err)
	}
	f := Fleet{LatestVersion: uint64(org.ConfigVersion), Epoch: uint64(epoch)}
	index := map[string]int{}
	for _, r := range regions {
		index[r] = len(f.Regions)
		f.Regions = append(f.Regions, FleetRegion{Name: r, Gateways: []FleetGateway{}})
	}
	for _, g := range rows {
		i, ok := index[g.Region]
		if !ok {
			index[g.Region] = len(f.Regions)
			i = len(f.Regions)
			f.Regions = append(f.Regions, FleetRegion{Name: g.Region, Gateways: []FleetGateway{}})
		}
		fg := FleetGateway{GatewayID: g.GatewayID, BuildVersion: g.BuildVersion, Capability: g.Capability, Ready: g.Ready,
			InFlight: g.InFlight, LastSeen: g.LastSeenAt.Time.UTC(), Lag: -1}
		switch age := now.Sub(g.LastSeenAt.Time); {
		case age < 15*time.Second:
			fg.Status = GatewayLive
			f.Regions[i].Live++
		case age < time.Minute:
			fg.Status = GatewayStale
		default:
			fg.Status = GatewayGone
		}
		var orgs []GatewayOrgState
		_ = json.Unmarshal(g.Orgs, &orgs)
		for _, o := range orgs {
			if o.OrgID == orgID {
				fg.Org = o
				if o.AppliedEpoch == f.Epoch {
					fg.Lag = int64(f.LatestVersion) - int64(o.AppliedVersion)
				}
			}
		}
		f.Regions[i].Gateways = append(f.Regions[i].Gateways, fg)
	}
	return f, nil
}
