"""Surgery on a restored model: new heads, in-place re-initialization, the plan."""
from graphsurgeon._src.surgery.heads import Head, add_head
from graphsurgeon._src.surgery.plan import Plan, VariablePlan, make_plan
from graphsurgeon._src.surgery.reinit import reinitialize

__all__ = ["Head", "Plan", "VariablePlan", "add_head", "make_plan", "reinitialize"]
