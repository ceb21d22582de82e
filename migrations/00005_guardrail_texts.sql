-- +goose Up

-- Where a rule matched: the texts of an answer ('content', 'reasoning', 'arguments',
-- 'refusal') or 'request'. Empty for rows ingested before, and from gateways that do
-- not say.
alter table guardrail_events add column texts text[] not null default '{}';
comment on column guardrail_events.texts is 'Where the rule matched, sorted: content, reasoning, arguments, refusal (responses) or request; empty when the gateway did not say.';

-- +goose Down
select 1;
