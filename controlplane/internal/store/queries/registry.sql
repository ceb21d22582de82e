-- name: CreateMCPServer :one
insert into mcp_servers (org_id, name, url, transport, auth_header, credential_sealed, credential_key_id, shared_with_all)
values ($1, $2, $3, $4, $5, $6, $7, $8) returning *;

-- name: ListMCPServers :many
select * from mcp_servers where org_id = $1 order by name;

-- name: DeleteMCPServer :one
delete from mcp_servers where id = $1 and org_id = $2 returning *;

-- name: CreateAgent :one
insert into a2a_agents (org_id, name, card_url, auth_header, credential_sealed, credential_key_id, shared_with_all)
values ($1, $2, $3, $4, $5, $6, $7) returning *;

-- name: ListAgents :many
select * from a2a_agents where org_id = $1 order by name;

-- name: DeleteAgent :one
delete from a2a_agents where id = $1 and org_id = $2 returning *;

-- name: InsertShare :exec
insert into registry_shares (org_id, kind, entry_id, team_id) values ($1, $2, $3, $4);

-- name: DeleteShares :exec
delete from registry_shares where kind = $1 and entry_id = $2;

-- name: ListShares :many
select kind, entry_id, team_id from registry_shares where org_id = $1 order by kind, entry_id, team_id;

-- name: SetTeamSuspended :one
update teams set suspended = $3, updated_at = now() where id = $1 and org_id = $2 returning *;

-- name: SetTeamRegions :one
update teams set regions = $3, updated_at = now() where id = $1 and org_id = $2 returning *;

-- name: CreateAlias :one
insert into model_aliases (team_id, org_id, alias, model_id) values ($1, $2, $3, $4) returning *;

-- name: DeleteAlias :one
delete from model_aliases where team_id = $1 and alias = $2 returning *;

-- name: ListAliases :many
select a.team_id, a.alias, a.model_id, m.name as model_name
from model_aliases a join models m on m.id = a.model_id
where a.org_id = $1 order by a.team_id, a.alias;

-- name: UpsertRegion :exec
insert into regions (name) values ($1) on conflict (name) do nothing;

-- name: ListRegions :many
select name from regions order by name;

-- name: UpsertGateway :exec
insert into gateways (gateway_id, region, build_version, capability, started_at, last_seen_at, ready, in_flight, orgs)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
on conflict (gateway_id) do update set region = excluded.region, build_version = excluded.build_version,
  capability = excluded.capability, started_at = excluded.started_at, last_seen_at = excluded.last_seen_at,
  ready = excluded.ready, in_flight = excluded.in_flight, orgs = excluded.orgs;

-- name: ListGateways :many
select * from gateways order by region, gateway_id;

-- name: ForgetGateways :exec
delete from gateways where last_seen_at < $1;
