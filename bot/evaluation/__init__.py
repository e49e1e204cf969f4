"""`shipmate eval`: the repository test made repeatable. Tasks in SWE-bench's instance format go
through the real run path (checkout, sandbox, agent, review); each is graded in a fresh sandbox
by the tests it names."""
