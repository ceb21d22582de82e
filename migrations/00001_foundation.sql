-- +goose Up

create table platform_state (
  singleton boolean not null default true,
  epoch bigint not null,
  created_at timestamptz not null default now(),
  constraint platform_state_pk primary key (singleton),
  constraint platform_state_singleton_ck check (singleton)
);
comment on table platform_state is 'One row: the config epoch of this installation (changes only when its history restarts).';
insert into platform_state (epoch) values ((extract(epoch from now()) * 1000)::bigint);

create table organizations (
  id uuid not null default gen_random_uuid(),
  slug text not null,
  name text not null,
  suspended boolean not null default false,
  config_version bigint not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint organizations_pk primary key (id),
  constraint organizations_slug_uq unique (slug),
  constraint organizations_slug_ck check (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
  constraint organizations_name_ck check (length(name) between 1 and 200)
);
comment on table organizations is 'Tenants. Every other tenant-owned row points at one.';

create table teams (
  id uuid not null default gen_random_uuid(),
  org_id uuid not null,
  slug text not null,
  name text not null,
  suspended boolean not null default false,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint teams_pk primary key (id),
  constraint teams_org_fk foreign key (org_id) references organizations (id) on delete cascade,
  constraint teams_org_slug_uq unique (org_id, slug),
  constraint teams_id_org_uq unique (id, org_id),
  constraint teams_slug_ck check (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
  constraint teams_name_ck check (length(name) between 1 and 200)
);
comment on table teams is 'Teams inside an organization; keys, budgets and virtual gateways belong to a team.';

create table api_keys (
  id text not null,
  org_id uuid not null,
  team_id uuid not null,
  name text not null,
  secret_sha256 bytea not null,
  allowed_models text[] not null default '{}',
  expires_at timestamptz,
  revoked_at timestamptz,
  last_used_at timestamptz,
  created_at timestamptz not null default now(),
  constraint api_keys_pk primary key (id),
  constraint api_keys_team_fk foreign key (team_id, org_id) references teams (id, org_id) on delete cascade,
  constraint api_keys_secret_sha256_uq unique (secret_sha256),
  constraint api_keys_secret_sha256_len_ck check (length(secret_sha256) = 32),
  constraint api_keys_id_ck check (id ~ '^[a-z0-9]{12}$'),
  constraint api_keys_name_ck check (length(name) between 1 and 200)
);
comment on table api_keys is 'Team keys. Only the SHA-256 of the secret is stored; the secret is shown once at creation.';

create table providers (
  id uuid not null default gen_random_uuid(),
  org_id uuid not null,
  name text not null,
  type text not null,
  base_url text not null,
  api_key_sealed bytea,
  api_key_key_id text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint providers_pk primary key (id),
  constraint providers_org_fk foreign key (org_id) references organizations (id) on delete cascade,
  constraint providers_org_name_uq unique (org_id, name),
  constraint providers_id_org_uq unique (id, org_id),
  constraint providers_type_ck check (type in ('openai-compatible')),
  constraint providers_secret_pair_ck check ((api_key_sealed is null) = (api_key_key_id is null)),
  constraint providers_name_ck check (length(name) between 1 and 200)
);
comment on table providers is 'Upstream LLM endpoints. Credentials are AES-256-GCM sealed under the master key named by api_key_key_id.';

create table models (
  id uuid not null default gen_random_uuid(),
  org_id uuid not null,
  name text not null,
  provider_id uuid not null,
  upstream_model text not null,
  input_price_per_mtok_micros bigint not null default 0,
  output_price_per_mtok_micros bigint not null default 0,
  cached_input_price_per_mtok_micros bigint not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint models_pk primary key (id),
  constraint models_org_fk foreign key (org_id) references organizations (id) on delete cascade,
  constraint models_provider_fk foreign key (provider_id, org_id) references providers (id, org_id) on delete restrict,
  constraint models_org_name_uq unique (org_id, name),
  constraint models_name_ck check (name ~ '^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$'),
  constraint models_upstream_model_ck check (length(upstream_model) between 1 and 200),
  constraint models_prices_ck check (input_price_per_mtok_micros >= 0 and output_price_per_mtok_micros >= 0 and cached_input_price_per_mtok_micros >= 0)
);
comment on table models is 'Models an org offers: the name callers use, the provider and upstream id, and prices in micro-USD per million tokens.';

create table config_outbox (
  id bigint generated always as identity,
  org_id uuid not null,
  reason text not null,
  created_at timestamptz not null default now(),
  constraint config_outbox_pk primary key (id)
);
comment on table config_outbox is 'Transactional outbox: a row per committed change whose org snapshot must be republished. Rows are deleted once published.';
create index config_outbox_org_idx on config_outbox (org_id);

create table audit_log (
  id bigint generated always as identity,
  at timestamptz not null default now(),
  actor text not null,
  org_id uuid,
  action text not null,
  target_type text not null,
  target_id text not null,
  before jsonb,
  after jsonb,
  constraint audit_log_pk primary key (id)
);
comment on table audit_log is 'Append-only record of every change made through the API or console, written in the same transaction as the change.';
create index audit_log_org_at_idx on audit_log (org_id, at desc);

-- +goose StatementBegin
create function audit_log_append_only() returns trigger language plpgsql as $$
begin
  raise exception 'audit_log is append-only';
end;
$$;
-- +goose StatementEnd
create trigger audit_log_append_only_trg before update or delete on audit_log
  for each row execute function audit_log_append_only();

create table usage_events (
  event_id uuid not null,
  started_at timestamptz not null,
  request_id text not null,
  org_id uuid not null,
  team_id uuid,
  key_id text,
  model text not null default '',
  upstream_model text not null default '',
  provider_id text not null default '',
  endpoint text not null,
  region text not null,
  gateway_id text not null,
  latency_ms bigint not null,
  time_to_first_token_ms bigint not null default 0,
  status_code integer not null,
  error_class text not null default '',
  streamed boolean not null default false,
  prompt_tokens bigint not null default 0,
  completion_tokens bigint not null default 0,
  cached_tokens bigint not null default 0,
  cost_micros bigint not null default 0,
  ingested_at timestamptz not null default now(),
  constraint usage_events_pk primary key (event_id, started_at)
) partition by range (started_at);
comment on table usage_events is 'One row per request served by a gateway, partitioned by month of started_at. event_id makes ingestion idempotent.';
create index usage_events_org_started_idx on usage_events (org_id, started_at desc);

-- +goose Down
-- Forward-only: released migrations are never rolled back.
select 1;
