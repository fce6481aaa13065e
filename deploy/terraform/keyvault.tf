# The MongoDB URI in a Key Vault (RBAC): Terraform writes it, the managed identity reads it, and
# the container app references it (rotating it there reaches the next revision).

resource "azurerm_key_vault" "mirror" {
  # checkov:skip=CKV_AZURE_109: Container Apps resolves Key Vault references over the vault's public endpoint; access is by RBAC (the identity and the deployer) only
  # checkov:skip=CKV_AZURE_189: as CKV_AZURE_109; add a private endpoint and deny public access when the environment runs in your VNet
  # checkov:skip=CKV2_AZURE_32: as CKV_AZURE_189
  count                      = var.key_vault.enabled ? 1 : 0
  name                       = var.key_vault.name
  location                   = azurerm_resource_group.mirror.location
  resource_group_name        = azurerm_resource_group.mirror.name
  tenant_id                  = data.azurerm_client_config.current.tenant_id
  sku_name                   = "standard"
  enable_rbac_authorization  = true
  purge_protection_enabled   = true
  soft_delete_retention_days = 30
  tags                       = var.tags

  network_acls {
    default_action = "Allow"
    bypass         = "AzureServices"
  }
}

# Whoever runs Terraform writes the secret.
resource "azurerm_role_assignment" "key_vault_writer" {
  count                = var.key_vault.enabled ? 1 : 0
  scope                = azurerm_key_vault.mirror[0].id
  role_definition_name = "Key Vault Secrets Officer"
  principal_id         = data.azurerm_client_config.current.object_id
}

resource "azurerm_role_assignment" "key_vault_reader" {
  count                = var.key_vault.enabled ? 1 : 0
  scope                = azurerm_key_vault.mirror[0].id
  role_definition_name = "Key Vault Secrets User"
  principal_id         = azurerm_user_assigned_identity.mirror.principal_id
  principal_type       = "ServicePrincipal"
}

resource "azurerm_key_vault_secret" "mongodb_uri" {
  # checkov:skip=CKV_AZURE_41: the URI lives as long as the database user's password; an expiry date would stop mirroring on a calendar
  count        = var.key_vault.enabled ? 1 : 0
  name         = "mongodb-uri"
  value        = local.mongodb_uri
  key_vault_id = azurerm_key_vault.mirror[0].id
  content_type = "MongoDB connection string"
  depends_on   = [azurerm_role_assignment.key_vault_writer]
}
