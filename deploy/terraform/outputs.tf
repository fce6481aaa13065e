output "identity_principal_id" {
  description = "The managed identity's object id: give it the Contributor role in the Fabric workspace (done here when fabric_workspace_id is set)."
  value       = azurerm_user_assigned_identity.mirror.principal_id
}

output "identity_client_id" {
  description = "The managed identity's client id (AZURE_CLIENT_ID in the container)."
  value       = azurerm_user_assigned_identity.mirror.client_id
}

output "container_app_name" {
  description = "The container app: az containerapp logs show -g <resource group> -n <name> --follow"
  value       = azurerm_container_app.mirror.name
}

output "landing_zone_url" {
  description = "The landing zone mirror writes."
  value       = local.landing_zone
}

output "atlas_private_endpoint_ip" {
  description = "The private endpoint's address in the VNet, when atlas_private_link is enabled."
  value       = local.private ? azurerm_private_endpoint.atlas[0].private_service_connection[0].private_ip_address : null
}
