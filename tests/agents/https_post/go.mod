module agentscope.test/https_post

go 1.19
