-- name: CreateProvider :one
insert into providers (org_id, name, type, base_url, api_key_sealed, api_key_key_id, api_version, shared_with_all, native_responses,
  azure_tenant_id, azure_client_id)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
returning *;

-- name: DeleteProvider :one
delete from providers where id = $1 and org_id = $2 returning *;

-- name: DeleteModel :one
delete from models where id = $1 and org_id = $2 returning *;

-- name: ListProviders :many
select * from providers where org_id = $1 order by name;

-- name: GetProvider :one
select * from providers where id = $1 and org_id = $2;

-- name: CreateModel :one
insert into models (org_id, name, provider_id, upstream_model, input_price_per_mtok_micros,
  output_price_per_mtok_micros, cached_input_price_per_mtok_micros, context_window, regions, shared_with_all)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
returning *;

-- name: ListModels :many
select * from models where org_id = $1 order by name;

-- name: UpdateProvider :one
update providers set name = $3, base_url = $4, api_key_sealed = $5, api_key_key_id = $6, api_version = $7,
  native_responses = $8, shared_with_all = $9, azure_tenant_id = $10, azure_client_id = $11, updated_at = now()
where id = $1 and org_id = $2
returning *;

-- name: UpdateModel :one
update models set upstream_model = $3, input_price_per_mtok_micros = $4, output_price_per_mtok_micros = $5,
  cached_input_price_per_mtok_micros = $6, context_window = $7, regions = $8, shared_with_all = $9, updated_at = now()
where id = $1 and org_id = $2
returning *;

-- name: GetProviderForUpdate :one
select * from providers where id = $1 and org_id = $2 for update;

-- name: GetModelForUpdate :one
select * from models where id = $1 and org_id = $2 for update;
