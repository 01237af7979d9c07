"""Stage 5, report: report.json (the contract), report.md, and the spend/budget sections."""
