-- +goose Up

create table users (
  id uuid not null default gen_random_uuid(),
  email text not null,
  name text not null default '',
  kind text not null default 'human',
  -- Service accounts belong to one org; humans to none (memberships say where they work).
  org_id uuid,
  platform_admin boolean not null default false,
  disabled boolean not null default false,
  created_at timestamptz not null default now(),
  last_login_at timestamptz,
  constraint users_pk primary key (id),
  constraint users_email_uq unique (email),
  constraint users_email_ck check (email = lower(email) and email like '%_@_%'),
  constraint users_kind_ck check (kind in ('human', 'service')),
  constraint users_service_org_ck check ((kind = 'service') = (org_id is not null)),
  constraint users_org_fk foreign key (org_id) references organizations (id) on delete cascade
);
comment on table users is 'People (provisioned just in time at SSO login or invited by email) and service accounts.';

create table org_memberships (
  org_id uuid not null,
  user_id uuid not null,
  role text not null,
  source text not null default 'manual',
  created_at timestamptz not null default now(),
  constraint org_memberships_pk primary key (org_id, user_id),
  constraint org_memberships_org_fk foreign key (org_id) references organizations (id) on delete cascade,
  constraint org_memberships_user_fk foreign key (user_id) references users (id) on delete cascade,
  constraint org_memberships_role_ck check (role in ('org_admin', 'member', 'viewer')),
  constraint org_memberships_source_ck check (source in ('manual', 'sso'))
);
comment on table org_memberships is 'A user''s role in an organization. source=sso rows are recomputed from IdP groups at every login.';

create table team_memberships (
  team_id uuid not null,
  org_id uuid not null,
  user_id uuid not null,
  role text not null,
  source text not null default 'manual',
  created_at timestamptz not null default now(),
  constraint team_memberships_pk primary key (team_id, user_id),
  constraint team_memberships_team_fk foreign key (team_id, org_id) references teams (id, org_id) on delete cascade,
  constraint team_memberships_org_member_fk foreign key (org_id, user_id) references org_memberships (org_id, user_id) on delete cascade,
  constraint team_memberships_role_ck check (role in ('team_admin', 'member', 'viewer')),
  constraint team_memberships_source_ck check (source in ('manual', 'sso'))
);
comment on table team_memberships is 'A user''s role in a team. Requires an org membership in the team''s org.';

create table sso_connections (
  org_id uuid not null,
  issuer text not null,
  client_id text not null,
  client_secret_sealed bytea,
  client_secret_key_id text,
  enabled boolean not null default true,
  default_role text not null default 'member',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint sso_connections_pk primary key (org_id),
  constraint sso_connections_org_fk foreign key (org_id) references organizations (id) on delete cascade,
  constraint sso_connections_secret_pair_ck check ((client_secret_sealed is null) = (client_secret_key_id is null)),
  constraint sso_connections_default_role_ck check (default_role in ('org_admin', 'member', 'viewer')),
  constraint sso_connections_client_id_ck check (length(client_id) between 1 and 500)
);
comment on table sso_connections is 'Per-org OIDC connection. The client secret is AES-256-GCM sealed under the master key.';

create table sso_domains (
  domain text not null,
  org_id uuid not null,
  constraint sso_domains_pk primary key (domain),
  constraint sso_domains_org_fk foreign key (org_id) references organizations (id) on delete cascade,
  constraint sso_domains_domain_ck check (domain = lower(domain) and domain ~ '^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$')
);
comment on table sso_domains is 'Email domains that sign in through an org''s IdP; a domain belongs to at most one org.';

create table sso_group_mappings (
  id uuid not null default gen_random_uuid(),
  org_id uuid not null,
  idp_group text not null,
  team_id uuid,
  role text not null,
  created_at timestamptz not null default now(),
  constraint sso_group_mappings_pk primary key (id),
  constraint sso_group_mappings_org_fk foreign key (org_id) references organizations (id) on delete cascade,
  constraint sso_group_mappings_team_fk foreign key (team_id, org_id) references teams (id, org_id) on delete cascade,
  constraint sso_group_mappings_uq unique nulls not distinct (org_id, idp_group, team_id),
  constraint sso_group_mappings_group_ck check (length(idp_group) between 1 and 500),
  constraint sso_group_mappings_role_ck check (
    (team_id is null and role in ('org_admin', 'member', 'viewer')) or
    (team_id is not null and role in ('team_admin', 'member', 'viewer')))
);
comment on table sso_group_mappings is 'IdP group -> org role (team_id null) or team role, applied at every SSO login.';

create table login_attempts (
  state_sha256 bytea not null,
  org_id uuid,
  nonce text not null,
  pkce_verifier text not null,
  next_path text not null default '/',
  email_hint text not null default '',
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  constraint login_attempts_pk primary key (state_sha256),
  constraint login_attempts_org_fk foreign key (org_id) references organizations (id) on delete cascade
);
comment on table login_attempts is 'OIDC authorization requests in flight (state -> nonce, PKCE verifier); single use, short-lived. org_id null = platform IdP.';

create table sessions (
  id_sha256 bytea not null,
  user_id uuid not null,
  csrf_token text not null,
  created_at timestamptz not null default now(),
  last_seen_at timestamptz not null default now(),
  expires_at timestamptz not null,
  revoked_at timestamptz,
  user_agent text not null default '',
  constraint sessions_pk primary key (id_sha256),
  constraint sessions_user_fk foreign key (user_id) references users (id) on delete cascade
);
comment on table sessions is 'Console sessions, stored server-side so they can be revoked. The cookie holds the id; only its hash is stored.';
create index sessions_user_idx on sessions (user_id);

create table api_tokens (
  id text not null,
  user_id uuid not null,
  org_id uuid not null,
  name text not null,
  secret_sha256 bytea not null,
  scopes text[] not null,
  created_by uuid,
  expires_at timestamptz,
  revoked_at timestamptz,
  last_used_at timestamptz,
  created_at timestamptz not null default now(),
  constraint api_tokens_pk primary key (id),
  constraint api_tokens_user_fk foreign key (user_id) references users (id) on delete cascade,
  constraint api_tokens_org_fk foreign key (org_id) references organizations (id) on delete cascade,
  constraint api_tokens_created_by_fk foreign key (created_by) references users (id) on delete set null,
  constraint api_tokens_secret_sha256_uq unique (secret_sha256),
  constraint api_tokens_id_ck check (id ~ '^[a-z0-9]{12}$'),
  constraint api_tokens_name_ck check (length(name) between 1 and 200),
  constraint api_tokens_scopes_ck check (cardinality(scopes) > 0)
);
comment on table api_tokens is 'Admin API tokens of a user or service account, limited to one org and to scopes. Hash only.';

create index audit_log_actor_idx on audit_log (actor);

-- +goose Down
select 1;
