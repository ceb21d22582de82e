-- +goose Up

create table regions (
  name text not null,
  display_name text not null default '',
  created_at timestamptz not null default now(),
  constraint regions_pk primary key (name),
  constraint regions_name_ck check (name ~ '^[a-z0-9-]{1,32}$')
);
comment on table regions is 'Gateway groups. Each has its own gateways and gets one config snapshot per org.';

alter table providers drop constraint providers_type_ck;
alter table providers add constraint providers_type_ck check (type in ('openai-compatible', 'anthropic', 'azure-openai', 'gemini'));
alter table providers add column api_version text not null default '';
alter table providers add column shared_with_all boolean not null default true;

alter table models add column context_window bigint not null default 0;
alter table models add column regions text[] not null default '{}';
alter table models add column shared_with_all boolean not null default true;
alter table models add constraint models_context_window_ck check (context_window >= 0);
comment on column models.regions is 'Regions the model is offered in; empty = every region.';

create table mcp_servers (
  id uuid not null default gen_random_uuid(),
  org_id uuid not null,
  name text not null,
  url text not null,
  transport text not null default 'streamable-http',
  auth_header text not null default 'Authorization',
  credential_sealed bytea,
  credential_key_id text,
  shared_with_all boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint mcp_servers_pk primary key (id),
  constraint mcp_servers_org_fk foreign key (org_id) references organizations (id) on delete cascade,
  constraint mcp_servers_org_name_uq unique (org_id, name),
  constraint mcp_servers_id_org_uq unique (id, org_id),
  constraint mcp_servers_name_ck check (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
  constraint mcp_servers_transport_ck check (transport in ('streamable-http', 'sse')),
  constraint mcp_servers_secret_pair_ck check ((credential_sealed is null) = (credential_key_id is null)),
  constraint mcp_servers_auth_header_ck check (auth_header ~ '^[A-Za-z0-9-]{1,64}$')
);
comment on table mcp_servers is 'Upstream MCP servers an org registers; the credential is sealed under the master key.';

create table a2a_agents (
  id uuid not null default gen_random_uuid(),
  org_id uuid not null,
  name text not null,
  card_url text not null,
  auth_header text not null default 'Authorization',
  credential_sealed bytea,
  credential_key_id text,
  shared_with_all boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint a2a_agents_pk primary key (id),
  constraint a2a_agents_org_fk foreign key (org_id) references organizations (id) on delete cascade,
  constraint a2a_agents_org_name_uq unique (org_id, name),
  constraint a2a_agents_id_org_uq unique (id, org_id),
  constraint a2a_agents_name_ck check (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
  constraint a2a_agents_secret_pair_ck check ((credential_sealed is null) = (credential_key_id is null)),
  constraint a2a_agents_auth_header_ck check (auth_header ~ '^[A-Za-z0-9-]{1,64}$')
);
comment on table a2a_agents is 'Upstream A2A agents an org registers by agent card URL.';

create table registry_shares (
  org_id uuid not null,
  kind text not null,
  entry_id uuid not null,
  team_id uuid not null,
  constraint registry_shares_pk primary key (kind, entry_id, team_id),
  constraint registry_shares_team_fk foreign key (team_id, org_id) references teams (id, org_id) on delete cascade,
  constraint registry_shares_kind_ck check (kind in ('provider', 'model', 'mcp_server', 'a2a_agent'))
);
comment on table registry_shares is 'Teams a registry entry is shared with when its shared_with_all is false.';

alter table teams add column regions text[] not null default '{}';
comment on column teams.regions is 'Regions the team''s virtual gateway may be used in; empty = every region.';

create table model_aliases (
  team_id uuid not null,
  org_id uuid not null,
  alias text not null,
  model_id uuid not null,
  created_at timestamptz not null default now(),
  constraint model_aliases_pk primary key (team_id, alias),
  constraint model_aliases_team_fk foreign key (team_id, org_id) references teams (id, org_id) on delete cascade,
  constraint model_aliases_model_fk foreign key (model_id) references models (id) on delete restrict,
  constraint model_aliases_alias_ck check (alias ~ '^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$')
);
comment on table model_aliases is 'Team-local model names of a team''s virtual gateway.';

alter table api_keys add column agent_identity text not null default '';
alter table api_keys add column allowed_tools text[] not null default '{}';
alter table api_keys add column allowed_agents text[] not null default '{}';
alter table api_keys add column allowed_regions text[] not null default '{}';
alter table api_keys add constraint api_keys_agent_identity_ck check (agent_identity ~ '^[A-Za-z0-9._:@/-]{0,128}$');

alter table usage_events add column agent_identity text not null default '';

create table gateways (
  gateway_id text not null,
  region text not null,
  build_version text not null default '',
  capability integer not null default 0,
  started_at timestamptz,
  last_seen_at timestamptz not null,
  ready boolean not null default false,
  in_flight bigint not null default 0,
  orgs jsonb not null default '[]',
  constraint gateways_pk primary key (gateway_id)
);
comment on table gateways is 'The fleet: the last heartbeat of every gateway (applied and rejected config versions per org).';

-- +goose Down
select 1;
