-- name: CreateTeam :one
insert into teams (org_id, slug, name) values ($1, $2, $3)
returning *;

-- name: ListTeams :many
select * from teams where org_id = $1 order by slug;

-- name: GetTeam :one
select * from teams where id = $1 and org_id = $2;
