module agentscope.test/go_tls_loop

go 1.19
