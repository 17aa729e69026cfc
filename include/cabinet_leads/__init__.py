"""cabinet-leads: reconcile the partner cabinet's driver-recruitment leads (Airflow-free domain package)."""

__all__ = ["ReconcileCabinetLeadsPipeline"]


def __getattr__(name: str):
    # Lazy so that `import cabinet_leads.normalize` stays light (no SQLAlchemy import).
    if name == "ReconcileCabinetLeadsPipeline":
        from cabinet_leads.pipeline import ReconcileCabinetLeadsPipeline

        return ReconcileCabinetLeadsPipeline
    raise AttributeError(name)
