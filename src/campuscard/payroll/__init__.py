"""Payroll (工资管理): payroll sheets, approval by a second person, each line paid once to the
staff member's campus account or bank card, the payroll report. docs/payroll.md"""
