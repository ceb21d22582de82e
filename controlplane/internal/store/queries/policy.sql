-- name: SetKeyLimits :exec
update api_keys set rpm = $3, tpm = $4, max_concurrent = $5 where id = $1 and org_id = $2;

-- name: SetTeamLimits :one
update teams set rpm = $3, tpm = $4, max_concurrent = $5, updated_at = now() where id = $1 and org_id = $2 returning *;

-- name: SetTeamLogContents :one
update teams set log_contents = $3, updated_at = now() where id = $1 and org_id = $2 returning *;

-- name: SetModelLimits :one
update models set rpm = $3, tpm = $4, max_concurrent = $5, updated_at = now() where id = $1 and org_id = $2 returning *;

-- name: SetModelRouting :one
update models set routing_strategy = $3, max_retries = $4, retry_backoff_ms = $5, timeout_ms = $6, ttft_timeout_ms = $7,
  breaker_failures = $8, breaker_cooldown_ms = $9, fallbacks = $10, stream_idle_timeout_ms = $11, updated_at = now()
where id = $1 and org_id = $2 returning *;

-- name: GetModel :one
select * from models where id = $1 and org_id = $2;

-- name: CreateDeployment :one
insert into model_deployments (org_id, model_id, provider_id, upstream_model, weight) values ($1, $2, $3, $4, $5) returning *;

-- name: DeleteDeployment :one
delete from model_deployments where id = $1 and model_id = $2 and org_id = $3 returning *;

-- name: ListDeployments :many
select * from model_deployments where org_id = $1 order by model_id, created_at, id;

-- name: CreateGuardrail :one
insert into guardrail_rules (org_id, team_id, name, detector, mode, direction, pattern) values ($1, $2, $3, $4, $5, $6, $7) returning *;

-- name: DeleteGuardrail :one
delete from guardrail_rules where id = $1 and team_id = $2 and org_id = $3 returning *;

-- name: ListGuardrails :many
select * from guardrail_rules where org_id = $1 order by team_id, created_at, id;

-- name: RecentGuardrailEvents :many
select e.*, coalesce(r.name, '')::text as rule_name from guardrail_events e left join guardrail_rules r on r.id::text = e.rule_id
where e.team_id = $1 and e.started_at >= $2 order by e.started_at desc limit 50;
