"""Labels: triple barrier and forward returns on bars, the cost model C(s,t), utility U = E[r]/C."""
