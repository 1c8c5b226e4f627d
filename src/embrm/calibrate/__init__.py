"""Step 7: isotonic maps of teacher and student, and distillation of the student."""
