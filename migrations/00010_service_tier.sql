-- +goose Up

-- The provider's processing tier as its answer reported it (OpenAI's service_tier:
-- default, flex, priority, scale; Anthropic's usage.service_tier: standard, priority),
-- '' when it reported none. Tiers are priced differently, so spend can only be
-- reconciled with the provider's invoice knowing which one served each request.
alter table usage_events add column service_tier text not null default '';
-- The ingester stores at most 32 bytes (it truncates what a gateway sends). Not
-- valid: every row already there holds the default, so checking them would only scan
-- the whole usage history under an exclusive lock; new rows and new partitions are
-- checked.
alter table usage_events add constraint usage_events_service_tier_ck check (octet_length(service_tier) <= 32) not valid;
comment on column usage_events.service_tier is 'Provider''s processing tier as its answer reported it (e.g. OpenAI default, flex, priority, scale; Anthropic standard, priority); '''' = none reported. At most 32 bytes.';

-- +goose Down
alter table usage_events drop constraint usage_events_service_tier_ck;
alter table usage_events drop column service_tier;
