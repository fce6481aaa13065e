# Providers, pinned to the majors this configuration is written for (the MongoDB_Fabric_Mirroring
# app's Terraform uses the same: azurerm 4, mongodbatlas 1, microsoft/fabric 1).
terraform {
  required_version = ">= 1.5"
  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = "~> 4.35"
    }
    mongodbatlas = {
      source  = "mongodb/mongodbatlas"
      version = "~> 1.37"
    }
    fabric = {
      source  = "microsoft/fabric"
      version = "~> 1.3"
    }
  }
}

provider "azurerm" {
  features {}
  subscription_id = var.subscription_id
}

# Keys from the variables, or MONGODB_ATLAS_PUBLIC_KEY / MONGODB_ATLAS_PRIVATE_KEY. Only used when
# atlas_private_link is enabled or atlas_cluster_name is set.
provider "mongodbatlas" {
  public_key  = var.atlas_public_key
  private_key = var.atlas_private_key
}

# Signs in like the Azure CLI (az login) unless configured otherwise. Only used when
# fabric_workspace_id is set.
provider "fabric" {}
