package bpf

//go:generate go tool bpf2go -cc clang -target bpfel -cflags "-O2 -g -Wall -Werror -nostdinc -Iheaders" -type xtr_reason -type xtr_action -type xtr_sess_flags -type xtr_sess_key -type xtr_sess -type xtr_addrs -type xtr_config -type xtr_call_blob -type xtr_leg -type xtr_rec_meta -type xtr_xsk_stat relay relay.bpf.c
