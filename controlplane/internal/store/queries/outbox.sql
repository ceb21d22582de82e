-- name: EnqueueConfig :exec
with queued as (
  insert into config_outbox (org_id, reason) values ($1, $2) returning org_id
)
select pg_notify('gatehouse_config_outbox', org_id::text) from queued;

-- name: PendingConfig :many
select org_id, max(id)::bigint as max_id from config_outbox group by org_id order by min(id) limit $1;

-- name: AckConfig :exec
delete from config_outbox where org_id = $1 and id <= $2;

-- name: InsertAudit :exec
insert into audit_log (actor, org_id, action, target_type, target_id, before, after)
values ($1, $2, $3, $4, $5, $6, $7);
