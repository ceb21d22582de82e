-- name: CreateOrg :one
insert into organizations (slug, name) values ($1, $2)
returning *;

-- name: ListOrgs :many
select * from organizations order by slug;

-- name: GetOrg :one
select * from organizations where id = $1;

-- name: GetOrgBySlug :one
select * from organizations where slug = $1;

-- name: BumpOrgConfigVersion :one
update organizations set config_version = config_version + 1 where id = $1
returning config_version;

-- name: GetEpoch :one
select epoch from platform_state;
