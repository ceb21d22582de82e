-- +goose Up

-- An Azure OpenAI provider may authenticate with a Microsoft Entra ID service principal
-- (OAuth 2.0 client credentials) instead of an API key. Its sealed credential
-- (api_key_sealed) then holds the app registration's client secret, which gateways send
-- to the token endpoint only.
alter table providers add column azure_tenant_id text not null default '';
alter table providers add column azure_client_id text not null default '';
alter table providers add constraint providers_azure_entra_pair_ck check ((azure_tenant_id = '') = (azure_client_id = ''));
alter table providers add constraint providers_azure_entra_type_ck check (azure_tenant_id = '' or type = 'azure-openai');
-- Without its client secret a gateway refuses the snapshot (and with it every change to
-- the org), so an Entra ID provider always has one.
alter table providers add constraint providers_azure_entra_secret_ck check (azure_tenant_id = '' or api_key_sealed is not null);
comment on column providers.azure_tenant_id is 'Azure OpenAI only: Microsoft Entra ID directory (tenant) id, a GUID or a verified domain; '''' = authenticate with the API key.';
comment on column providers.azure_client_id is 'Azure OpenAI only: Microsoft Entra ID application (client) id, a GUID; set together with azure_tenant_id, and api_key_sealed then holds its client secret.';

-- +goose Down
-- A release without Entra ID would send a client secret as an API key: the secrets go
-- (those providers then have no credential; an older control plane cannot open them
-- anyway, they are sealed apart). The check that kept them goes first.
alter table providers drop constraint providers_azure_entra_secret_ck;
update providers set api_key_sealed = null, api_key_key_id = null where azure_tenant_id <> '';
alter table providers drop constraint providers_azure_entra_type_ck;
alter table providers drop constraint providers_azure_entra_pair_ck;
alter table providers drop column azure_client_id;
alter table providers drop column azure_tenant_id;
