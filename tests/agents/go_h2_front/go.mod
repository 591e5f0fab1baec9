module agentscope.test/go_h2_front

go 1.19
