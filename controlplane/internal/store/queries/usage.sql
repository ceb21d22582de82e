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

-- name: UsageBreakdown :many
select coalesce(t.name, '')::text as team, u.model,
       count(*)::bigint as requests,
       count(*) filter (where u.status_code >= 400)::bigint as errors,
       coalesce(sum(u.prompt_tokens), 0)::bigint as prompt_tokens,
       coalesce(sum(u.completion_tokens), 0)::bigint as completion_tokens,
       coalesce(sum(u.cached_tokens), 0)::bigint as cached_tokens,
       coalesce(sum(u.cache_write_tokens), 0)::bigint as cache_write_tokens,
       coalesce(sum(u.cost_micros), 0)::bigint as cost_micros,
       coalesce(percentile_cont(0.5) within group (order by u.latency_ms), 0)::float8 as p50_ms,
       coalesce(percentile_cont(0.95) within group (order by u.latency_ms), 0)::float8 as p95_ms
from usage_events u left join teams t on t.id = u.team_id and t.org_id = u.org_id
where u.org_id = $1 and u.started_at >= $2
group by 1, 2 order by cost_micros desc, requests desc limit 200;

-- name: RecentUsageSince :many
select sqlc.embed(u), coalesce(t.name, '')::text as team_name from usage_events u left join teams t on t.id = u.team_id and t.org_id = u.org_id
where u.org_id = $1 and u.started_at >= $2 order by u.started_at desc limit $3;
