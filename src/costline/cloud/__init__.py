"""The cloud half of the ledger: billing imports (FOCUS, CUR), the Cost Explorer query language, reports."""
