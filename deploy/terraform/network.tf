# The private link to MongoDB Atlas: a VNet with a subnet for the Container Apps environment and
# one for private endpoints, an Atlas private link service, an Azure private endpoint to it, and
# the endpoint registered with Atlas. As in the MongoDB_Fabric_Mirroring app's Terraform
# (mongodbAtlasResources.tf): the endpoint is a manual connection that Atlas accepts once the
# endpoint service resource is created. Atlas serves the private endpoint's connection string
# (pl-0-<region>...mongodb.net) from its own DNS, so no private DNS zone is needed.

resource "azurerm_virtual_network" "mirror" {
  count               = local.private ? 1 : 0
  name                = "${var.name}-vnet"
  location            = azurerm_resource_group.mirror.location
  resource_group_name = azurerm_resource_group.mirror.name
  address_space       = [var.atlas_private_link.address_space]
  tags                = var.tags
}

# A workload-profiles environment needs a subnet of /27 or more, delegated to it.
resource "azurerm_subnet" "apps" {
  count                = local.private ? 1 : 0
  name                 = "container-apps"
  resource_group_name  = azurerm_resource_group.mirror.name
  virtual_network_name = azurerm_virtual_network.mirror[0].name
  address_prefixes     = [var.atlas_private_link.apps_subnet_prefix]

  delegation {
    name = "container-apps"
    service_delegation {
      name    = "Microsoft.App/environments"
      actions = ["Microsoft.Network/virtualNetworks/subnets/join/action"]
    }
  }
}

resource "azurerm_subnet" "endpoints" {
  count                             = local.private ? 1 : 0
  name                              = "private-endpoints"
  resource_group_name               = azurerm_resource_group.mirror.name
  virtual_network_name              = azurerm_virtual_network.mirror[0].name
  address_prefixes                  = [var.atlas_private_link.endpoints_subnet_prefix]
  private_endpoint_network_policies = "Enabled"
}

# Outbound only; nothing in the VNet needs to be reached from outside.
resource "azurerm_network_security_group" "mirror" {
  count               = local.private ? 1 : 0
  name                = "${var.name}-nsg"
  location            = azurerm_resource_group.mirror.location
  resource_group_name = azurerm_resource_group.mirror.name
  tags                = var.tags
}

resource "azurerm_subnet_network_security_group_association" "apps" {
  count                     = local.private ? 1 : 0
  subnet_id                 = azurerm_subnet.apps[0].id
  network_security_group_id = azurerm_network_security_group.mirror[0].id
}

resource "azurerm_subnet_network_security_group_association" "endpoints" {
  count                     = local.private ? 1 : 0
  subnet_id                 = azurerm_subnet.endpoints[0].id
  network_security_group_id = azurerm_network_security_group.mirror[0].id
}

resource "mongodbatlas_privatelink_endpoint" "atlas" {
  count         = local.private ? 1 : 0
  project_id    = var.atlas_project_id
  provider_name = "AZURE"
  region        = coalesce(var.atlas_private_link.atlas_region, var.location)
}

resource "azurerm_private_endpoint" "atlas" {
  count               = local.private ? 1 : 0
  name                = "${var.name}-atlas"
  location            = azurerm_resource_group.mirror.location
  resource_group_name = azurerm_resource_group.mirror.name
  subnet_id           = azurerm_subnet.endpoints[0].id
  tags                = var.tags

  private_service_connection {
    name                           = mongodbatlas_privatelink_endpoint.atlas[0].private_link_service_name
    private_connection_resource_id = mongodbatlas_privatelink_endpoint.atlas[0].private_link_service_resource_id
    is_manual_connection           = true
    request_message                = "mirror: Azure Private Link to MongoDB Atlas"
  }
}

resource "mongodbatlas_privatelink_endpoint_service" "atlas" {
  count                       = local.private ? 1 : 0
  project_id                  = mongodbatlas_privatelink_endpoint.atlas[0].project_id
  private_link_id             = mongodbatlas_privatelink_endpoint.atlas[0].private_link_id
  endpoint_service_id         = azurerm_private_endpoint.atlas[0].id
  private_endpoint_ip_address = azurerm_private_endpoint.atlas[0].private_service_connection[0].private_ip_address
  provider_name               = "AZURE"
}

data "mongodbatlas_advanced_cluster" "atlas" {
  count      = var.atlas_cluster_name == null ? 0 : 1
  project_id = var.atlas_project_id
  name       = var.atlas_cluster_name
  # The private endpoint's connection string exists once the endpoint is registered.
  depends_on = [mongodbatlas_privatelink_endpoint_service.atlas]
}
