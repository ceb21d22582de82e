-- name: CreateKey :one
insert into api_keys (id, org_id, team_id, name, secret_sha256, allowed_models, expires_at,
  agent_identity, allowed_tools, allowed_agents, allowed_regions)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
returning *;

-- name: ListKeys :many
select * from api_keys where org_id = $1 and team_id = $2 order by created_at, id;

-- name: GetKey :one
select * from api_keys where id = $1 and org_id = $2;

-- name: RevokeKey :one
update api_keys set revoked_at = now()
where id = $1 and org_id = $2 and revoked_at is null
returning *;

-- name: ListActiveKeysForOrg :many
select * from api_keys
where org_id = $1 and revoked_at is null and (expires_at is null or expires_at > now())
order by id;
