-- name: GetUser :one
select * from users where id = $1;

-- name: GetUserByEmail :one
select * from users where email = $1;

-- name: CreateUser :one
insert into users (email, name, kind, org_id, platform_admin) values ($1, $2, $3, $4, $5)
returning *;

-- name: UpdateUserLogin :one
update users set name = case when $2::text = '' then name else $2::text end,
  platform_admin = platform_admin or $3::boolean, last_login_at = now()
where id = $1 returning *;

-- name: SetUserDisabled :one
update users set disabled = $2 where id = $1 returning *;

-- name: UpsertOrgMembership :one
insert into org_memberships (org_id, user_id, role, source) values ($1, $2, $3, $4)
on conflict (org_id, user_id) do update set role = excluded.role, source = excluded.source
returning *;

-- name: UpsertTeamMembership :one
insert into team_memberships (team_id, org_id, user_id, role, source) values ($1, $2, $3, $4, $5)
on conflict (team_id, user_id) do update set role = excluded.role, source = excluded.source
returning *;

-- name: DeleteOrgMembership :execrows
delete from org_memberships where org_id = $1 and user_id = $2;

-- name: DeleteTeamMembership :execrows
delete from team_memberships where team_id = $1 and user_id = $2;

-- name: DeleteSSOMemberships :exec
with t as (delete from team_memberships where team_memberships.org_id = $1 and team_memberships.user_id = $2 and team_memberships.source = 'sso')
delete from org_memberships where org_memberships.org_id = $1 and org_memberships.user_id = $2 and org_memberships.source = 'sso'
  and not exists (select 1 from team_memberships tm where tm.org_id = $1 and tm.user_id = $2 and tm.source = 'manual');

-- name: GetOrgMembership :one
select * from org_memberships where org_id = $1 and user_id = $2;

-- name: ListOrgMembers :many
select u.id, u.email, u.name, u.kind, u.disabled, m.role, m.source
from org_memberships m join users u on u.id = m.user_id
where m.org_id = $1 order by u.email;

-- name: ListTeamMembershipsForOrg :many
select tm.team_id, tm.user_id, tm.role, tm.source, t.slug as team_slug, t.name as team_name
from team_memberships tm join teams t on t.id = tm.team_id
where tm.org_id = $1 order by t.slug;

-- name: ListAllOrgMemberships :many
select org_id, user_id, role from org_memberships;

-- name: ListAllTeamMemberships :many
select team_id, org_id, user_id, role from team_memberships;

-- name: ListPlatformAdmins :many
select id from users where platform_admin and not disabled;

-- name: ListOrgsForUser :many
select o.* from organizations o
where exists (select 1 from org_memberships m where m.org_id = o.id and m.user_id = $1)
order by o.slug;

-- name: GetSSOConnection :one
select * from sso_connections where org_id = $1;

-- name: UpsertSSOConnection :one
insert into sso_connections (org_id, issuer, client_id, client_secret_sealed, client_secret_key_id, enabled, default_role)
values ($1, $2, $3, $4, $5, $6, $7)
on conflict (org_id) do update set issuer = excluded.issuer, client_id = excluded.client_id,
  client_secret_sealed = coalesce(excluded.client_secret_sealed, sso_connections.client_secret_sealed),
  client_secret_key_id = coalesce(excluded.client_secret_key_id, sso_connections.client_secret_key_id),
  enabled = excluded.enabled, default_role = excluded.default_role, updated_at = now()
returning *;

-- name: ListSSODomains :many
select domain from sso_domains where org_id = $1 order by domain;

-- name: DeleteSSODomains :exec
delete from sso_domains where org_id = $1;

-- name: InsertSSODomain :exec
insert into sso_domains (domain, org_id) values ($1, $2);

-- name: OrgForDomain :one
select org_id from sso_domains where domain = $1;

-- name: ListGroupMappings :many
select g.*, coalesce(t.slug, '')::text as team_slug, coalesce(t.name, '')::text as team_name
from sso_group_mappings g left join teams t on t.id = g.team_id
where g.org_id = $1 order by g.idp_group, t.slug nulls first;

-- name: CreateGroupMapping :one
insert into sso_group_mappings (org_id, idp_group, team_id, role) values ($1, $2, $3, $4)
returning *;

-- name: DeleteGroupMapping :one
delete from sso_group_mappings where id = $1 and org_id = $2 returning *;

-- name: MappingsForGroups :many
select * from sso_group_mappings where org_id = $1 and idp_group = any($2::text[]);

-- name: CreateLoginAttempt :exec
insert into login_attempts (state_sha256, org_id, nonce, pkce_verifier, next_path, email_hint, expires_at)
values ($1, $2, $3, $4, $5, $6, $7);

-- name: TakeLoginAttempt :one
delete from login_attempts where state_sha256 = $1 returning *;

-- name: PurgeLoginAttempts :exec
delete from login_attempts where expires_at < now();

-- name: CreateSession :exec
insert into sessions (id_sha256, user_id, csrf_token, expires_at, user_agent) values ($1, $2, $3, $4, $5);

-- name: GetSession :one
select s.*, u.email, u.name, u.platform_admin, u.disabled
from sessions s join users u on u.id = s.user_id
where s.id_sha256 = $1;

-- name: TouchSession :exec
update sessions set last_seen_at = now() where id_sha256 = $1;

-- name: RevokeSession :exec
update sessions set revoked_at = now() where id_sha256 = $1 and revoked_at is null;

-- name: RevokeUserSessions :exec
update sessions set revoked_at = now() where user_id = $1 and revoked_at is null;

-- name: CreateAPIToken :one
insert into api_tokens (id, user_id, org_id, name, secret_sha256, scopes, created_by, expires_at)
values ($1, $2, $3, $4, $5, $6, $7, $8)
returning *;

-- name: GetAPITokenBySecret :one
select t.*, u.email, u.disabled, u.kind from api_tokens t join users u on u.id = t.user_id
where t.secret_sha256 = $1;

-- name: ListAPITokens :many
select t.*, u.email, u.name as user_name, u.kind from api_tokens t join users u on u.id = t.user_id
where t.org_id = $1 order by t.created_at desc;

-- name: RevokeAPIToken :one
update api_tokens set revoked_at = coalesce(revoked_at, now()) where id = $1 and org_id = $2 returning *;

-- name: TouchAPIToken :exec
update api_tokens set last_used_at = now() where id = $1 and (last_used_at is null or last_used_at < now() - interval '1 minute');

-- name: FilterAudit :many
select * from audit_log
where org_id = sqlc.arg(org_id)
  and (sqlc.arg(actor)::text = '' or actor = sqlc.arg(actor)::text)
  and (sqlc.arg(action)::text = '' or action like sqlc.arg(action)::text || '%')
  and (sqlc.arg(target_type)::text = '' or target_type = sqlc.arg(target_type)::text)
  and (sqlc.arg(since)::timestamptz is null or at >= sqlc.arg(since)::timestamptz)
  and (sqlc.arg(before_id)::bigint = 0 or id < sqlc.arg(before_id)::bigint)
order by id desc
limit sqlc.arg(lim);

-- name: MemberCounts :many
select team_id, count(*)::bigint as n from team_memberships where org_id = $1 group by team_id;
