"""The kernel side of the lesson: the only part of this package a student's kernel sees while it is graded
(copied there by the engine, see ``LESSON.kernel_modules``): the probes and their usability tests."""
