-- name: CountUsageForOrg :one
select count(*) from usage_events where org_id = $1;

-- name: UsageTotals :one
select count(*)::bigint as requests,
       coalesce(sum(prompt_tokens), 0)::bigint as prompt_tokens,
       coalesce(sum(completion_tokens), 0)::bigint as completion_tokens,
       coalesce(sum(cost_micros), 0)::bigint as cost_micros,
       count(*) filter (where status_code >= 400)::bigint as errors
from usage_events where org_id = $1 and started_at >= $2;

-- name: RecentUsage :many
select * from usage_events where org_id = $1 order by started_at desc limit $2;
