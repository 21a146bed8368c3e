//! Every KMS API body type decodes any bytes without panicking; what decodes re-encodes.
#![no_main]

use kms_pam::kms::api::*;
use libfuzzer_sys::fuzz_target;

fn decode<T: serde::de::DeserializeOwned + serde::Serialize>(data: &[u8]) {
    if let Ok(value) = serde_json::from_slice::<T>(data) {
        let text = serde_json::to_string(&value).expect("a decoded body encodes");
        serde_json::from_str::<T>(&text).expect("an encoded body decodes");
    }
}

macro_rules! all {
    ($data:expr; $($ty:ty),*) => { $( decode::<$ty>($data); )* };
}

fuzz_target!(|data: &[u8]| {
    all!(data; CreateUser, CreateGateway, EnrollGateway, CreateResource, CreateAccount,
        CreateGrant, CreateSession, Heartbeat, UploadEvents, ErrorBody, WhoAmI, User,
        CreatedUser, Gateway, CreatedGateway, EnrolledGateway, Resource, Account, Grant,
        SessionView, CreatedSession, Changes, SessionDetail, UploadedEvents,
        RecordingView, GatewayCredential, UpdateAccount, Project, CreateProject, Member,
        SetMember, SessionChange, SessionClient, AuditProgress, AuditKeys, GatewayAuditKey,
        RegisterAuditKey);
});
