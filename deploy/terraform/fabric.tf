# Fabric: the identity's workspace role, and optionally the open mirroring database itself, as in
# the MongoDB_Fabric_Mirroring app's Terraform (fabricResources.tf). A new mirrored database must
# be started once: `mirror fabric start --workspace <id> --item <id>` (docs/fabric.md).

resource "fabric_workspace_role_assignment" "mirror" {
  count        = var.fabric_workspace_id == null ? 0 : 1
  workspace_id = var.fabric_workspace_id
  principal = {
    id   = azurerm_user_assigned_identity.mirror.principal_id
    type = "ServicePrincipal"
  }
  role = var.fabric_workspace_role
}

# Definition: https://learn.microsoft.com/rest/api/fabric/articles/item-management/definitions/mirrored-database-definition
resource "fabric_mirrored_database" "mirror" {
  count        = var.create_mirrored_database ? 1 : 0
  display_name = var.mirrored_database_name
  workspace_id = var.fabric_workspace_id
  format       = "Default"
  definition = {
    "mirroring.json" = {
      source = "${path.module}/mirroring.json"
    }
  }
}
