-- +goose Up

alter table api_keys add column rpm bigint not null default 0;
alter table api_keys add column tpm bigint not null default 0;
alter table api_keys add column max_concurrent bigint not null default 0;
alter table api_keys add constraint api_keys_limits_ck check (rpm >= 0 and tpm >= 0 and max_concurrent >= 0);

alter table teams add column rpm bigint not null default 0;
alter table teams add column tpm bigint not null default 0;
alter table teams add column max_concurrent bigint not null default 0;
alter table teams add column log_contents boolean not null default false;
alter table teams add constraint teams_limits_ck check (rpm >= 0 and tpm >= 0 and max_concurrent >= 0);

alter table models add column rpm bigint not null default 0;
alter table models add column tpm bigint not null default 0;
alter table models add column max_concurrent bigint not null default 0;
alter table models add column routing_strategy text not null default 'weighted';
alter table models add column max_retries integer not null default 0;
alter table models add column retry_backoff_ms bigint not null default 0;
alter table models add column timeout_ms bigint not null default 0;
alter table models add column ttft_timeout_ms bigint not null default 0;
alter table models add column breaker_failures integer not null default 0;
alter table models add column breaker_cooldown_ms bigint not null default 0;
alter table models add column fallbacks text[] not null default '{}';
alter table models add constraint models_limits_ck check (rpm >= 0 and tpm >= 0 and max_concurrent >= 0);
alter table models add constraint models_routing_strategy_ck check (routing_strategy in ('weighted', 'least-busy', 'latency'));
alter table models add constraint models_routing_ck check (max_retries between 0 and 10 and retry_backoff_ms >= 0
  and timeout_ms >= 0 and ttft_timeout_ms >= 0 and breaker_failures between 0 and 1000 and breaker_cooldown_ms >= 0);
comment on column models.fallbacks is 'Model names tried in order when every deployment of this model failed.';

create table model_deployments (
  id uuid not null default gen_random_uuid(),
  org_id uuid not null,
  model_id uuid not null,
  provider_id uuid not null,
  upstream_model text not null,
  weight integer not null default 1,
  created_at timestamptz not null default now(),
  constraint model_deployments_pk primary key (id),
  constraint model_deployments_model_fk foreign key (model_id) references models (id) on delete cascade,
  constraint model_deployments_provider_fk foreign key (provider_id, org_id) references providers (id, org_id) on delete restrict,
  constraint model_deployments_weight_ck check (weight between 0 and 1000),
  constraint model_deployments_upstream_ck check (length(upstream_model) between 1 and 200)
);
comment on table model_deployments is 'Extra places a model is served (load balancing and failover); the model''s own provider is the first.';
create index model_deployments_model_idx on model_deployments (model_id);

create table guardrail_rules (
  id uuid not null default gen_random_uuid(),
  org_id uuid not null,
  team_id uuid not null,
  name text not null,
  detector text not null,
  mode text not null,
  direction text not null default 'both',
  pattern text not null default '',
  created_at timestamptz not null default now(),
  constraint guardrail_rules_pk primary key (id),
  constraint guardrail_rules_team_fk foreign key (team_id, org_id) references teams (id, org_id) on delete cascade,
  constraint guardrail_rules_team_name_uq unique (team_id, name),
  constraint guardrail_rules_name_ck check (length(name) between 1 and 100),
  constraint guardrail_rules_detector_ck check (detector in ('email', 'phone', 'card', 'iban', 'api_key', 'private_key', 'prompt_injection', 'custom_regex')),
  constraint guardrail_rules_mode_ck check (mode in ('block', 'redact', 'audit')),
  constraint guardrail_rules_direction_ck check (direction in ('request', 'response', 'both')),
  constraint guardrail_rules_pattern_ck check ((detector = 'custom_regex') = (pattern <> ''))
);
comment on table guardrail_rules is 'A team''s guardrails: detector, mode (block, redact, audit) and direction.';

alter table usage_events add column deployment_id text not null default '';
alter table usage_events add column retries integer not null default 0;
alter table usage_events add column fallback_model text not null default '';
alter table usage_events add column overhead_us bigint not null default 0;

create table guardrail_events (
  event_id uuid not null,
  rule_id text not null,
  started_at timestamptz not null,
  org_id uuid not null,
  team_id uuid,
  request_id text not null,
  detector text not null,
  mode text not null,
  direction text not null,
  matches integer not null,
  constraint guardrail_events_pk primary key (event_id, rule_id, direction)
);
comment on table guardrail_events is 'Guardrail triggers recorded by gateways (never the matched text), one row per rule, direction and request.';
create index guardrail_events_team_idx on guardrail_events (team_id, started_at desc);

-- +goose Down
select 1;
